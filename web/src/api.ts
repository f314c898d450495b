// Typed client of the lab's JSON API (server/API.md). Not UI code: main.ts draws the results.

// Per-model defaults for the forms, chosen from the model's vocabulary (server/examples.cpp).
export interface PatchExample { clean: string; corrupted: string; answer_correct: string; answer_incorrect: string; target: string }
export interface SteerExample {
  prompt: string; prompt_add: string; prompt_sub: string; layer: number; coefficient: number;
  max_new_tokens: number; temperature: number; top_p: number; seed: number; changes_generation: boolean;
}
export interface Examples { prompt: string; patching: PatchExample; steering: SteerExample }
// A sparse autoencoder the lab serves on this model's hook (has_features: its features.json is loaded).
export interface SaeInfo {
  name: string; dir: string; hook: string; hook_head_index: number | null; d_in: number; d_sae: number;
  architecture: string; k: number | null; has_features: boolean;
}
export interface ModelInfo {
  name: string; dir: string; family: string; n_layers: number; n_heads: number; d_model: number;
  d_head: number; n_ctx: number; d_vocab: number; attn_only: boolean; compact_vocab: boolean;
  n_params: number; examples: Examples; saes: SaeInfo[];
}
export interface ModelsResponse {
  models: ModelInfo[]; default_model: string | null; gpt2_loaded: boolean; gpt2_hint?: string; toy_hint?: string;
}
// Input tokens carry the text's own GPT-2 id and string; oov: the model reads it as its "other" id.
// Output tokens (predictions, generations): gpt2_id -1 is the model's "other" id (str is a placeholder).
export interface Token { id: number; gpt2_id: number; str: string; oov?: boolean }
export interface Pred { id: number; gpt2_id: number; str: string; prob: number }
export interface RunResponse {
  model: string; tokens: Token[]; predictions: Pred[][]; next_token_prob: (number | null)[];
  loss: number | null; ablated: [number, number][]; ablation_kind: string;
  attention?: number[][][][];  // [L][H][query][key <= query]
  stage_labels: string[]; resid_norms: number[][]; logit_lens: Pred[][][];
}
export interface PatchResponse {
  model: string; target: string; clean_tokens: Token[]; corrupted_tokens: Token[];
  answer_correct: Token; answer_incorrect: Token; clean_logit_diff: number; corrupted_logit_diff: number;
  rows: string[]; cols: string[]; recovery: (number | null)[][]; patched_logit_diff: (number | null)[][];
}
export interface Generation { text: string; tokens: Token[] }
export interface SteerResponse {
  model: string; layer: number; hook: string; coefficient: number; prompt: string;
  vector_norms: number[]; unsteered: Generation; steered: Generation;
}

// Features panel (features.json schema: analysis/SAE_FEATURES_JSON.md).
export interface SaeHeader { model: string; sae: string; hook: string; d_sae: number; has_features: boolean }
export interface TokenLatent { index: number; act: number; label?: string }
export interface FeatureTokensResponse extends SaeHeader { tokens: Token[]; latents: TokenLatent[][]; l0: number[] }
export interface FeatureExample { act: number; offset: number; peak: number; ids: number[]; strs: string[]; acts: number[]; quantile?: number }
export interface LogitEffect { id: number; str: string; value: number }
export interface Latent {
  index: number; density: number; fired: number; max: number; mean: number | null; label: string;
  hist: { first: number; counts: number[] }; top: FeatureExample[]; quantiles: FeatureExample[];
  promoted: LogitEffect[]; suppressed: LogitEffect[]; neighbors: { index: number; cosine: number }[];
}
export interface FeaturePageResponse extends SaeHeader {
  index: number; decoder_norm: number; logit_path: string;
  histogram_bins: { log10_lo: number; width: number; count: number };
  data: { tokens: number; windows: number; context: number; split: string };
  latent: Latent; neighbors: { index: number; cosine: number; label: string }[];
}
export interface SearchHit { index: number; label: string; density: number; max: number; score: number; matched: string[] }
export interface FeatureSearchResponse extends SaeHeader { query: string; results: SearchHit[] }
export interface FeatureInterventionResponse extends SaeHeader {
  intervention: 'steer' | 'clamp' | 'ablate'; feature: { sae: string; index: number; label?: string };
  prompt: string; tokens: Token[]; observed: (number | null)[]; prompt_kl: (number | null)[]; max_logit_change: number;
  coefficient?: number; value?: number; position?: number | null; unsteered: Generation; steered: Generation;
}

export class ApiError extends Error {
  constructor(public status: number, message: string) { super(message); }
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data: unknown;
  try { data = await res.json(); } catch { throw new ApiError(res.status, `HTTP ${res.status}: response is not JSON`); }
  if (!res.ok) {
    const msg = (data as { error?: string }).error ?? `HTTP ${res.status}`;
    throw new ApiError(res.status, msg);
  }
  return data as T;
}

export const api = {
  models: () => call<ModelsResponse>('GET', '/api/models'),
  run: (req: object) => call<RunResponse>('POST', '/api/run', req),
  patch: (req: object) => call<PatchResponse>('POST', '/api/patch', req),
  steer: (req: object) => call<SteerResponse>('POST', '/api/steer', req),
  featureTokens: (req: object) => call<FeatureTokensResponse>('POST', '/api/features/tokens', req),
  featurePage: (req: object) => call<FeaturePageResponse>('POST', '/api/features/page', req),
  featureSearch: (req: object) => call<FeatureSearchResponse>('POST', '/api/features/search', req),
  // kind "steer" goes through /api/steer with "feature"; clamp and ablate have their own paths.
  featureIntervene: (kind: string, req: object) => call<FeatureInterventionResponse>('POST',
    kind === 'steer' ? '/api/steer' : `/api/features/${kind}`, req),
};
