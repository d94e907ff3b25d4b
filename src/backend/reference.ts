// The slow, obviously correct kernels: plain loops straight from the math (kernels/*.ts references).
import { projectionReference, EPI_NONE, EPI_RESIDUAL, EPI_SOFTPLUS } from '../../kernels/projection.js';
import { normReference } from '../../kernels/norms.js';
import { convReference } from '../../kernels/conv.js';
import { scanReference } from '../../kernels/scan.js';
import { logProbReference } from '../../kernels/softmax.js';
import type { Kernels } from './types.js';

export const referenceKernels: Kernels = {
	name: 'reference',
	linear: async (w, x, T, S, epi) =>
		projectionReference(
			w.data, w.rows, w.cols, x, T, S,
			epi?.residual ? EPI_RESIDUAL : epi?.softplusBias ? EPI_SOFTPLUS : EPI_NONE,
			epi?.residual, epi?.softplusBias,
		),
	norm: async (...a) => normReference(...a),
	convSilu: async (...a) => convReference(...a),
	scan: async (...a) => scanReference(...a),
	logProb: async (...a) => logProbReference(...a),
};
