/** The runner host: its side of the guest protocol, webhook intake, its durable state, and the GitHub App client. */
export * from './guest-session.ts';
export * from './store/index.ts';
export * from './webhook/index.ts';
export * from './github/index.ts';
