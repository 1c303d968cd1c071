// llama.cpp peer for the decode benchmark, through node-llama-cpp installed OUTSIDE the project:
//   node bench/nlc_decode.mjs NLC_DIR MODEL.gguf THREADS N  -> one JSON line with decode tokens/s
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
console.log(JSON.stringify({decode_tok_s: n / ((performance.now() - t0) / 1000)}));
