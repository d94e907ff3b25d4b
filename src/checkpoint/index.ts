// Public surface of checkpoint loading (docs/formats.md).
export { loadCheckpoint, loadModel, checkpointSummary, countParameters, expectedTensors, formatCount } from './load.js';
export { convertCheckpoint, hfConfig } from './convert.js';
export { writeSafetensors, openSafetensors, type TensorToWrite } from './safetensors.js';
