/** The guest agent's protocol, for the host side (src/runner) and the image build (the agent's injection). */
export * from './frames.ts';
export * from './messages.ts';
export { AGENT_VERSION } from './agent.ts';
