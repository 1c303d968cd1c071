// llama.cpp peer for the decode benchmark, through node-llama-cpp installed OUTSIDE the project:
//   node bench/nlc_decode.mjs NLC_DIR MODEL.gguf THREADS N [PROMPT] [PREFILL_THREADS]
// -> one JSON line: decode tokens/s (N greedy tokens after BOS) and prefill tokens/s (a PROMPT-token
// prompt, default 64, evaluated in one batch on a fresh sequence with PREFILL_THREADS, default 2).
import path from "node:path";
import {pathToFileURL} from "node:url";
const [nlcDir, modelPath, threadsArg, nArg] = process.argv.slice(2);
const {getLlama} = await import(pathToFileURL(path.join(nlcDir, "node_modules", "node-llama-cpp", "dist", "index.js")).href);
const llama = await getLlama({gpu: false});
const model = await llama.loadModel({modelPath});
const ctx = await model.createContext({contextSize: 256, threads: Number(threadsArg)});
const n = Number(nArg);
let count = 0, t0 = 0;
for await (const t of ctx.getSequence().evaluate([model.tokens.bos], {temperature: 0})) {
  if (count === 0) t0 = performance.now();  // time from the first generated token on
  if (++count > n) break;
}
const decode = n / ((performance.now() - t0) / 1000);
const P = Number(process.argv[6] ?? 64);
const prompt = [model.tokens.bos];
for (let i = 1; i < P; ++i) prompt.push((i * 7919) % 32000);
const seq2 = (await model.createContext({contextSize: 256, threads: Number(process.argv[7] ?? 2)})).getSequence();
const t1 = performance.now();
await seq2.evaluateWithoutGeneratingNewTokens(prompt);
console.log(JSON.stringify({decode_tok_s: decode, prefill_tok_s: P / ((performance.now() - t1) / 1000)}));
