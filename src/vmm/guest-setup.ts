/**
 * Everything a guest finds in its memory at the first instruction: kernel, initrd, command line, boot_params or
 * PVH start info, e820, MP table, GDT and page tables. Pure over GuestMemory, so it is tested without KVM.
 */
import { virtioCmdline } from './devices/virtio/placement.ts';
import { ErrorCodes, MatchlockError } from '../errors.ts';
import {
  CMDLINE_START, e820Entries, writeBootGdtAndPageTables, writeBootParams, writeMpTable, writePvhStartInfo, type BootMode,
} from './arch/x86_64/index.ts';
import { Cmdline, loadInitrd, loadKernel, writeCmdline, type LoadedKernel } from './boot/index.ts';
import type { GuestMemory } from './memory/index.ts';
import type { VmConfig } from './vm-config.ts';

export interface PreparedGuest {
  readonly kernel: LoadedKernel;
  readonly mode: BootMode;
  /** Where the vCPUs start. */
  readonly entry: number;
  /** The command line exactly as the guest receives it. */
  readonly cmdline: string;
  readonly initrd: { readonly gpa: number; readonly size: number } | null;
}

function chooseMode(config: VmConfig, kernel: LoadedKernel): { mode: BootMode; entry: number } {
  if (config.bootProtocol === 'pvh') {
    if (kernel.kind !== 'elf' || kernel.pvhEntry === null) {
      throw new MatchlockError(ErrorCodes.KERNEL_FORMAT,
        `kernel ${config.kernel} has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): use --boot-protocol linux, or a vmlinux built with CONFIG_PVH=y`,
        { path: config.kernel });
    }
    return { mode: 'pvh', entry: kernel.pvhEntry };
  }
  return { mode: 'linux', entry: kernel.entry64 };
}

export function prepareGuest(mem: GuestMemory, config: VmConfig): PreparedGuest {
  const kernel = loadKernel(mem, config.kernel);
  const { mode, entry } = chooseMode(config, kernel);
  const limit = kernel.kind === 'bzimage' ? Math.min(kernel.cmdlineSize + 1, 2048) : undefined;
  const cmdline = new Cmdline(limit).push(config.cmdline);
  const devices = virtioCmdline(config.drives.length + config.nets.length + (config.vsock === null ? 0 : 1));
  if (devices !== '') cmdline.push(devices);
  const cmdlineSize = writeCmdline(mem, CMDLINE_START, cmdline);
  const initrd = config.initrd === null
    ? null
    : loadInitrd(mem, config.initrd, kernel.loadEnd, kernel.kind === 'bzimage' ? kernel.initrdAddrMax : undefined);
  const e820 = e820Entries(mem);
  const initrdOpt = initrd === null ? {} : { initrd };
  if (mode === 'pvh') {
    writePvhStartInfo(mem, { cmdlineGpa: CMDLINE_START, e820, ...initrdOpt });
  } else {
    const setupHeader = kernel.kind === 'bzimage' ? { setupHeader: kernel.setupHeader } : {};
    writeBootParams(mem, { cmdlineGpa: CMDLINE_START, cmdlineSize, e820, ...initrdOpt, ...setupHeader });
  }
  writeMpTable(mem, config.vcpus);
  writeBootGdtAndPageTables(mem, mode);
  return { kernel, mode, entry, cmdline: cmdline.toString(), initrd };
}
