/** Golden images (issue 5, in progress): image layers applied safely, and images built from rootfs tarballs. */
export { applyLayer, safeComponents, DEFAULT_LIMITS, type ApplyLimits, type ApplyStats, type DevicePolicy } from './layer-apply.ts';
export { openImageSource } from './source-open.ts';
export { parseFrom, FROM_FORMS, type ImageSource, type ImageLayer, type OpenedLayer, type SourceRef } from './source.ts';
export type { ImageConfig } from './image-config.ts';
export { makeExt4, mke2fsOptions, treeStats } from './mkfs.ts';
export { scratchDir } from './scratch.ts';
export { buildImage, type BuildRequest, type ImageMetadata } from './build.ts';
export {
  publishImage, resolveImage, listImages, inspectImage, removeImage, gcImages, readImageMeta,
  type ResolvedImage, type ImageEntry, type ImageVersion, type InspectedImage, type Removed, type RemoveOptions, type GcResult,
} from './image-store.ts';
export { markInUse, unmarkInUse, openHolders, readMarkers, isAlive, type InUseMarker } from './image-in-use.ts';
export { importKernel, MAX_KERNEL_BYTES, type KernelImportRequest, type ImportedKernel } from './kernel-import.ts';
export { listKernels, DEFAULT_KERNELS_DIR, type KernelMetadata, type KernelListing } from './kernel-store.ts';
export { checkKernel, type KernelFacts } from './kernel-check.ts';
export { injectAgent, chrootSelfCheck, agentPayload, AGENT_ROOT, AGENT_LAUNCHER } from './inject-agent.ts';
