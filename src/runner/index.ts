/** The runner host: for now, its side of the guest protocol. */
export * from './guest-session.ts';
