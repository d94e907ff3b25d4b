// Public surface of checkpoint loading (DESIGN §3).
export { loadCheckpoint, loadModel, checkpointSummary, countParameters, expectedTensors, formatCount } from './load.js';
export { convertCheckpoint, hfConfig } from './convert.js';
export { writeSafetensors, openSafetensors, type TensorToWrite } from './safetensors.js';
