/**
 * The API's bodies, in Firecracker's shapes and spelling, and the rules each is checked by when it is PUT.
 */
import { RATE_LIMITER, TOKEN_BUCKET_FIELDS, type Fields } from './body-schema.ts';

export interface TokenBucketBody {
  readonly size: number;
  readonly refill_time: number;
  readonly one_time_burst?: number;
}

export interface RateLimiterBody {
  readonly bandwidth?: TokenBucketBody;
  readonly ops?: TokenBucketBody;
}

export interface MachineConfigBody {
  readonly vcpu_count: number;
  readonly mem_size_mib: number;
  readonly smt?: boolean;
  readonly cpu_template?: string;
  readonly track_dirty_pages?: boolean;
  readonly huge_pages?: string;
}

export interface BootSourceBody {
  readonly kernel_image_path: string;
  readonly boot_args?: string;
  readonly initrd_path?: string;
}

export interface DriveBody {
  readonly drive_id: string;
  readonly is_root_device: boolean;
  readonly path_on_host?: string;
  readonly is_read_only?: boolean;
  readonly partuuid?: string;
  readonly cache_type?: string;
  readonly io_engine?: string;
  readonly rate_limiter?: RateLimiterBody;
  readonly socket?: string;
  /** matchlock's addition: the VM's writes go to this new file, the image at path_on_host is only read. */
  readonly cow_path?: string;
}

export interface NetworkInterfaceBody {
  readonly iface_id: string;
  readonly host_dev_name: string;
  readonly guest_mac?: string;
  readonly mtu?: number;
  readonly rx_rate_limiter?: RateLimiterBody;
  readonly tx_rate_limiter?: RateLimiterBody;
}

export interface VsockBody {
  readonly guest_cid: number;
  readonly uds_path: string;
  readonly vsock_id?: string;
}

export interface SerialBody {
  readonly serial_out_path?: string;
  readonly rate_limiter?: TokenBucketBody;
}

export interface LoggerBody {
  readonly log_path?: string;
  readonly level?: string;
  readonly show_level?: boolean;
  readonly show_log_origin?: boolean;
  readonly module?: string;
}

export interface MetricsBody {
  readonly metrics_path: string;
  readonly emit_id?: boolean;
  readonly properties?: Readonly<Record<string, string>>;
}

/** `GET /vm/config`, and the file `--config-file` reads. */
export interface FullVmConfigBody {
  readonly 'machine-config'?: MachineConfigBody;
  readonly 'boot-source'?: BootSourceBody;
  readonly drives?: readonly DriveBody[];
  readonly 'network-interfaces'?: readonly NetworkInterfaceBody[];
  readonly vsock?: VsockBody;
  readonly logger?: LoggerBody;
  readonly metrics?: MetricsBody;
}

export const MACHINE_CONFIG: Fields = {
  vcpu_count: { type: 'integer', required: true, min: 1, max: 32 },
  mem_size_mib: { type: 'integer', required: true },
  smt: { type: 'boolean' },
  cpu_template: { type: 'string' },
  track_dirty_pages: { type: 'boolean' },
  huge_pages: { type: 'string', enum: ['None', 'Transparent', '2M'] },
};

/** PATCH /machine-config: every field optional. */
export const MACHINE_CONFIG_PATCH: Fields = Object.fromEntries(
  Object.entries(MACHINE_CONFIG).map(([k, rule]) => [k, { ...rule, required: false }]),
);

export const BOOT_SOURCE: Fields = {
  kernel_image_path: { type: 'string', required: true },
  boot_args: { type: 'string' },
  initrd_path: { type: 'string' },
};

export const DRIVE: Fields = {
  drive_id: { type: 'string', required: true },
  is_root_device: { type: 'boolean', required: true },
  path_on_host: { type: 'string' },
  is_read_only: { type: 'boolean' },
  partuuid: { type: 'string' },
  cache_type: { type: 'string', enum: ['Unsafe', 'Writeback'] },
  io_engine: { type: 'string', enum: ['Sync', 'Async'] },
  rate_limiter: { type: 'object', fields: RATE_LIMITER },
  socket: { type: 'string' },
  cow_path: { type: 'string' },
};

export const NETWORK_INTERFACE: Fields = {
  iface_id: { type: 'string', required: true },
  host_dev_name: { type: 'string', required: true },
  guest_mac: { type: 'string' },
  mtu: { type: 'integer', min: 68, max: 65535 },
  rx_rate_limiter: { type: 'object', fields: RATE_LIMITER },
  tx_rate_limiter: { type: 'object', fields: RATE_LIMITER },
};

export const VSOCK: Fields = {
  guest_cid: { type: 'integer', required: true, min: 3, max: 0xfffffffe },
  uds_path: { type: 'string', required: true },
  vsock_id: { type: 'string' },
};

export const SERIAL: Fields = {
  serial_out_path: { type: 'string' },
  rate_limiter: { type: 'object', fields: TOKEN_BUCKET_FIELDS },
};

export const LOGGER: Fields = {
  log_path: { type: 'string' },
  level: { type: 'string', enum: ['Error', 'Warning', 'Info', 'Debug', 'Trace', 'Off'] },
  show_level: { type: 'boolean' },
  show_log_origin: { type: 'boolean' },
  module: { type: 'string' },
};

export const METRICS: Fields = {
  metrics_path: { type: 'string', required: true },
  emit_id: { type: 'boolean' },
  properties: { type: 'string-map' },
};

export const ACTION: Fields = {
  action_type: { type: 'string', required: true, enum: ['FlushMetrics', 'InstanceStart', 'SendCtrlAltDel'] },
};

export const VM_STATE: Fields = {
  state: { type: 'string', required: true, enum: ['Paused', 'Resumed'] },
};

