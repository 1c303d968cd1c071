// clm convert: write a loaded model as a CompactLM folder, a Hugging Face folder, a llama2.c .bin or a GGUF file.
#include "cli/cli.h"
#include "formats/gguf.h"
#include "formats/hf.h"
#include "formats/llama2c.h"
#include "models/io.h"

namespace clm::cli {

void add_convert(CLI::App& app, Commands& cmds) {
  struct Args {
    std::string model_path, tok_path, to, out, dtype = "f32";
  };
  auto a = std::make_shared<Args>();
  auto* cv = app.add_subcommand("convert", "Write a loaded model as a CompactLM folder, a Hugging Face folder, a llama2.c .bin or a GGUF file");
  cv->add_option("--model", a->model_path, "Checkpoint: CompactLM folder, Hugging Face folder or llama2.c .bin")->required();
  cv->add_option("--tokenizer", a->tok_path, "Tokenizer file; default: the checkpoint's");
  cv->add_option("--to", a->to, "compactlm | hf (a transformers Llama folder) | llama2c | gguf")->required();
  cv->add_option("--out", a->out, "Output folder (compactlm, hf) or file")->required();
  cv->add_option("--dtype", a->dtype, "GGUF weight type: f32 | f16 | bf16 | q8_0 (ggml's Q8_0) | mxfp4 (ggml's MXFP4, OCP MX codes); rows not a multiple of 32 stay f16")->capture_default_str();
  cmds.push_back({cv, [a] {
                    if (a->to != "compactlm" && a->to != "hf" && a->to != "llama2c" && a->to != "gguf")
                      throw std::invalid_argument("--to must be compactlm, hf, llama2c or gguf");
                    LoadedModel lm = load_model(a->model_path, DType::f32, a->tok_path);
                    refuse_quantized(lm, "convert");
                    const auto w = lm.model->named_weights();
                    if (a->to == "compactlm") {
                      save_model_files(a->out, *lm.model, lm.tokenizer.get());
                    } else if (a->to == "hf") {
                      write_hf_folder(a->out, lm.model->config(), w);
                      if (lm.tokenizer) save_tokenizer(*lm.tokenizer, a->out + "/tokenizer.json");
                    } else if (a->to == "llama2c") {
                      write_llama2c_checkpoint(a->out, lm.model->config(), w);
                    } else {
                      if (!lm.tokenizer) throw std::runtime_error("GGUF needs a tokenizer: give --tokenizer");
                      write_gguf(a->out, lm.model->config(), w, *lm.tokenizer, a->dtype);
                    }
                    std::printf("wrote %s (%s, from %s %s)\n", a->out.c_str(), a->to.c_str(), lm.format.c_str(), lm.dir.c_str());
                    return 0;
                  }});
}

}  // namespace clm::cli
