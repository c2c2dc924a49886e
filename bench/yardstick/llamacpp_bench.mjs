// llamacpp_bench.mjs - llama.cpp (through node-llama-cpp's prebuilt CPU
// binaries) on a GGUF file: prefill and greedy decode timings, the greedy
// ids and the top-5 probabilities of the first generated position, with
// the same prompt ids as `bench_yardstick gen` ((i*7919+13) mod V).
//
//   NODE_PATH=/tmp/yard/node_modules node llamacpp_bench.mjs MODEL NPROMPT NGEN THREADS
//
// Prints one line "RESULT {json}" like bench_yardstick.
import { createRequire } from "module";
import path from "path";

const [modelPath, npS, ngS, thS] = process.argv.slice(2);
const NP = parseInt(npS), NG = parseInt(ngS), TH = parseInt(thS || "2");
// node-llama-cpp lives outside the repository (installed into /tmp)
const prefix = process.env.YARD_NODE_MODULES || "/tmp/yard/node_modules";
const req = createRequire(path.join(prefix, "x.js"));
const { getLlama, LlamaLogLevel } = await import(req.resolve("node-llama-cpp"));

const llama = await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true,
                               skipDownload: true, maxThreads: TH, logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
const V = Number(model.fileInfo.metadata.llama.vocab_size);
const ctx = await model.createContext({ contextSize: 1024, batchSize: 512, sequences: 1,
                                        threads: { ideal: TH, min: TH }, flashAttention: false });
const seq = ctx.getSequence();
const prompt = Array.from({ length: NP }, (_, i) => (i * 7919 + 13) % Number(V));
const now = () => Number(process.hrtime.bigint()) / 1e9;

// untimed warm-up, which also gives the first position's probabilities
await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, NP - 1));
let top5 = [];
for await (const out of seq.evaluateWithMetadata([prompt[NP - 1]], { probabilities: true },
                                                  { temperature: 1, topK: 0, topP: 1 })) {
  top5 = [...out.probabilities.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5);
  break;
}
await seq.clearHistory();

// prefill
let t0 = now();
await seq.evaluateWithoutGeneratingNewTokens(prompt);
const prefill_s = now() - t0;
await seq.clearHistory();

// greedy decode: NP-1 prompt tokens untimed, then NG one-token steps
await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, NP - 1));
const ids = [];
t0 = now();
for await (const tok of seq.evaluate([prompt[NP - 1]], { temperature: 0 })) {
  ids.push(tok);
  if (ids.length >= NG) break;
}
const decode_s = now() - t0;
console.log("RESULT " + JSON.stringify({ mode: "gen", tool: "llama.cpp", model: modelPath,
  n_prompt: NP, n_gen: NG, prefill_s, prefill_tps: NP / prefill_s, decode_s,
  decode_tps: NG / decode_s, ids, top5, build: llama.buildType, cpu_variant: null }));
await ctx.dispose();
await model.dispose();
await llama.dispose();
