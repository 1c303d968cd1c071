// Greedy continuation of a GGUF file in a real llama.cpp, through the npm package node-llama-cpp
// (installed OUTSIDE the project:  mkdir /tmp/nlc && cd /tmp/nlc && npm install node-llama-cpp@3.21.1).
//   node tools/gguf_greedy.mjs /tmp/nlc MODEL.gguf [N]     -> prints the text of N tokens after BOS
// Used to check `clm convert --to gguf` against `clm generate --temperature 0` (docs/RESULTS.md).
import path from "node:path";
import {pathToFileURL} from "node:url";
const [nlcDir, modelPath, nArg] = process.argv.slice(2);
const entry = path.join(nlcDir, "node_modules", "node-llama-cpp", "dist", "index.js");
const {getLlama} = await import(pathToFileURL(entry).href);
const llama = await getLlama({gpu: false});
const model = await llama.loadModel({modelPath});
const ctx = await model.createContext({contextSize: 512, threads: 1});
const out = [];
for await (const t of ctx.getSequence().evaluate([model.tokens.bos], {temperature: 0})) {
  out.push(t);
  if (out.length >= Number(nArg ?? 200)) break;
}
process.stdout.write(model.detokenize(out) + "\n");
