/** The VMM process's HTTP API (Firecracker's shapes) and its config file. */
export { ApiServer, MAX_BODY_BYTES } from './api-server.ts';
export { applyConfigFile } from './config-file.ts';
export { VmmController, now, type ApiReply, type VmState } from './vmm-controller.ts';
export { findRoute, dispatch } from './routes.ts';
