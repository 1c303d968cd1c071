// Greedy continuation of a GGUF file in a real llama.cpp, through the npm package node-llama-cpp
// (installed OUTSIDE the project:  mkdir /tmp/nlc && cd /tmp/nlc && npm install node-llama-cpp@3.21.1).
//   node tools/gguf_greedy.mjs /tmp/nlc MODEL.gguf [N] [PROMPT]
// -> prints the text of N greedy tokens after BOS (if the vocabulary has one) and PROMPT
// Used to check `clm convert --to gguf` against `clm generate --temperature 0` (docs/RESULTS.md).
import path from "node:path";
import {pathToFileURL} from "node:url";
const [nlcDir, modelPath, nArg, promptText] = process.argv.slice(2);
const entry = path.join(nlcDir, "node_modules", "node-llama-cpp", "dist", "index.js");
const {getLlama} = await import(pathToFileURL(entry).href);
const llama = await getLlama({gpu: false});
const model = await llama.loadModel({modelPath});
// f32 KV cache, no flash attention (llama.cpp defaults to an f16 cache and, on CPU, flash attention
// with f16 products: either alone changes the greedy path of a sensitive model)
const ctx = await model.createContext({contextSize: 512, threads: 1, experimentalKvCacheKeyType: "F32",
                                       experimentalKvCacheValueType: "F32", flashAttention: false});
const out = [];
const prompt = [...(model.tokens.bos != null ? [model.tokens.bos] : []), ...(promptText ? model.tokenize(promptText, true) : [])];
for await (const t of ctx.getSequence().evaluate(prompt, {temperature: 0})) {
  out.push(t);
  if (out.length >= Number(nArg ?? 200)) break;
}
process.stdout.write(model.detokenize(out) + "\n");
