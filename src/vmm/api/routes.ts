/**
 * Method and path → controller operation. Anything else is Firecracker's 400 "Invalid request method and/or
 * path". GET and other body-less operations refuse a body; PUT and PATCH need a JSON one.
 */
import { apiError } from './api-error.ts';
import type { ApiReply, VmmController } from './vmm-controller.ts';

type Handler = (c: VmmController, body: unknown, id: string) => ApiReply | Promise<ApiReply>;

interface Route {
  readonly method: 'GET' | 'PUT' | 'PATCH';
  /** A literal path, or a prefix ending in "/" followed by one id segment. */
  readonly path: string;
  readonly withId?: boolean;
  readonly handler: Handler;
}

const ROUTES: readonly Route[] = [
  { method: 'GET', path: '/', handler: (c) => c.info() },
  { method: 'GET', path: '/version', handler: (c) => c.version() },
  { method: 'GET', path: '/vm/config', handler: (c) => c.vmConfig() },
  { method: 'GET', path: '/machine-config', handler: (c) => c.machineConfig() },
  { method: 'PUT', path: '/machine-config', handler: (c, b) => c.putMachineConfig(b) },
  { method: 'PATCH', path: '/machine-config', handler: (c, b) => c.patchMachineConfig(b) },
  { method: 'PUT', path: '/boot-source', handler: (c, b) => c.putBootSource(b) },
  { method: 'PUT', path: '/drives/', withId: true, handler: (c, b, id) => c.putDrive(id, b) },
  { method: 'PUT', path: '/network-interfaces/', withId: true, handler: (c, b, id) => c.putNetworkInterface(id, b) },
  { method: 'PUT', path: '/vsock', handler: (c, b) => c.putVsock(b) },
  { method: 'PUT', path: '/serial', handler: (c, b) => c.putSerial(b) },
  { method: 'PUT', path: '/logger', handler: (c, b) => c.putLogger(b) },
  { method: 'PUT', path: '/metrics', handler: (c, b) => c.putMetrics(b) },
  { method: 'PUT', path: '/actions', handler: (c, b) => c.action(b) },
  { method: 'PATCH', path: '/vm', handler: (c, b) => c.patchVm(b) },
];

export interface Found {
  readonly route: Route;
  readonly id: string;
}

/** The route for a request, or a 400 naming it. The path is matched without its query string. */
export function findRoute(method: string, rawPath: string): Found {
  const path = rawPath.split('?')[0]!;
  for (const route of ROUTES) {
    if (route.method !== method) continue;
    if (route.withId !== true && path === route.path) return { route, id: '' };
    if (route.withId === true && path.startsWith(route.path)) {
      const segment = path.slice(route.path.length);
      if (segment.length > 0 && !segment.includes('/')) {
        let id: string;
        try {
          id = decodeURIComponent(segment);
        } catch {
          break;
        }
        return { route, id };
      }
    }
  }
  throw apiError(`invalid request method and/or path: ${method} ${path.slice(0, 200)}`);
}

/** Runs the operation for a request whose body (undefined when there was none) has been parsed. */
export async function dispatch(c: VmmController, method: string, path: string, body: unknown): Promise<ApiReply> {
  const { route, id } = findRoute(method, path);
  if (method === 'GET' && body !== undefined) throw apiError(`GET ${path} takes no body`);
  if (method !== 'GET' && body === undefined) throw apiError(`${method} ${path} needs a JSON body`);
  return route.handler(c, body, id);
}
