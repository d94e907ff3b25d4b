// The slow, obviously correct kernels: plain loops straight from the math (the references in kernels/*.ts).
import { projectionReference } from '../../kernels/projection.js';
import { normReference } from '../../kernels/norms.js';
import { convReference } from '../../kernels/conv.js';
import { scanReference } from '../../kernels/scan.js';
import { logProbReference } from '../../kernels/softmax.js';
import type { Kernels } from './types.js';

export const referenceKernels: Kernels = {
	name: 'reference',
	linear: async (...a) => projectionReference(...a),
	norm: async (...a) => normReference(...a),
	convSilu: async (...a) => convReference(...a),
	scan: async (...a) => scanReference(...a),
	logProb: async (...a) => logProbReference(...a),
};
