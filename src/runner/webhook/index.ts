/** Webhook intake of the runner host: GitHub App deliveries verified, checked and recorded (docs/runner-host.md). */
export { WebhookServer, MAX_BODY_BYTES, type WebhookServerOptions } from './server.ts';
export { intake, type WebhookDelivery, type IntakeResult, type IntakeStore, type IntakeOutcome } from './intake.ts';
export { parseWorkflowJob, MAX_LABELS } from './workflow-job.ts';
export { createVerifier, decodeBody, type VerifySignature } from './verify.ts';
