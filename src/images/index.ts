/** Golden images (issue 5, in progress): image layers applied safely, and images built from rootfs tarballs. */
export { applyLayer, safeComponents, DEFAULT_LIMITS, type ApplyLimits, type ApplyStats } from './layer-apply.ts';
export { buildImage, type BuildRequest, type ImageMetadata } from './build.ts';
