// Typed client of the lab's JSON API (server/API.md). Not UI code: main.ts draws the results.

// Per-model defaults for the forms, chosen from the model's vocabulary (server/examples.cpp).
export interface PatchExample { clean: string; corrupted: string; answer_correct: string; answer_incorrect: string; target: string }
export interface SteerExample {
  prompt: string; prompt_add: string; prompt_sub: string; layer: number; coefficient: number;
  max_new_tokens: number; temperature: number; top_p: number; seed: number; changes_generation: boolean;
}
export interface Examples { prompt: string; patching: PatchExample; steering: SteerExample }
export interface ModelInfo {
  name: string; dir: string; family: string; n_layers: number; n_heads: number; d_model: number;
  d_head: number; n_ctx: number; d_vocab: number; attn_only: boolean; compact_vocab: boolean;
  n_params: number; examples: Examples;
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
};
