/** Golden images (issue 5, in progress): applying image layers safely onto a tree. */
export { applyLayer, safeComponents, DEFAULT_LIMITS, type ApplyLimits, type ApplyStats } from './layer-apply.ts';
