// What the engine tells its consumers. The engine yields these from async generators; the CLI (plain text, JSON)
// and the Ink UI only render them — neither computes anything of its own.

export interface SpeculativeStats {
	drafted: number; // bytes proposed by the drafter
	tested: number; // drafted bytes the verifier judged (a run stops at the first rejection)
	accepted: number; // drafted bytes kept
	acceptanceRate: number; // accepted / tested
	meanAcceptedRun: number; // mean accepted bytes per verify pass
	verifyPasses: number;
}

export interface GenerationStats {
	promptBytes: number;
	generatedBytes: number;
	seconds: number; // generation time (after the prompt was read)
	bytesPerSecond: number;
	speculative: SpeculativeStats | null;
}

export type GenerationEvent =
	| { type: 'start'; promptBytes: number; backend: string; model: string; draft: string | null; stateBytes: number }
	/** Drafted bytes waiting for the verifier (show them distinctly; a 'commit' or 'reject' follows). */
	| { type: 'draft'; bytes: Uint8Array }
	/** Bytes that are final. source 'draft' = accepted drafted bytes, 'model' = sampled by the byte model. */
	| { type: 'commit'; bytes: Uint8Array; source: 'draft' | 'model' }
	/** The last `count` drafted bytes were dropped by the verifier. */
	| { type: 'reject'; count: number }
	| { type: 'stats'; stats: GenerationStats }
	| { type: 'done'; reason: 'max-bytes' | 'stop' | 'aborted'; stats: GenerationStats };

export interface PerplexityResult {
	file: string;
	bytes: number;
	scored: number; // bytes - 1: the first byte is context only
	bits_per_byte: number;
	word_perplexity: number;
	seconds: number;
	bytes_per_second: number;
	backend: string;
	model: string;
	curve?: { start: number; end: number; bits_per_byte: number }[];
	limit?: number; // --limit: at most this many bytes of the input were read
	noise?: { type: string; p: number }[]; // --noise: applied in this order to the bytes read, before scoring
	noise_seed?: number;
	input_bytes?: number; // with noise: bytes read from the input (`bytes` counts the noised text scored)
}

export type PerplexityEvent =
	| { type: 'file'; file: string; bytes: number | null } // bytes null when unknown (stdin)
	| { type: 'progress'; file: string; done: number; total: number | null; bitsPerByte: number; bytesPerSecond: number }
	| { type: 'result'; result: PerplexityResult };
