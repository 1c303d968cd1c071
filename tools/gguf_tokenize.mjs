// Token ids of texts in a real llama.cpp (node-llama-cpp, installed OUTSIDE the project), to check
// the tokenizer that `clm convert --to gguf` writes:
//   node tools/gguf_tokenize.mjs /tmp/nlc MODEL.gguf TEXTS.json   -> one JSON array of id arrays
// TEXTS.json: {"texts": [...]} (e.g. tests/fixtures/bpe_reference.json). Special tokens in the
// text are parsed as special tokens; no BOS is added.
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";
const [nlcDir, modelPath, textsPath] = process.argv.slice(2);
const entry = path.join(nlcDir, "node_modules", "node-llama-cpp", "dist", "index.js");
const {getLlama} = await import(pathToFileURL(entry).href);
const llama = await getLlama({gpu: false});
const model = await llama.loadModel({modelPath});
const texts = JSON.parse(fs.readFileSync(textsPath, "utf8")).texts;
process.stdout.write(JSON.stringify(texts.map((t) => Array.from(model.tokenize(t, true)))) + "\n");
