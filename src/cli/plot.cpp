// clm plot: the loss curve of a run as SVG.
#include <filesystem>

#include "cli/cli.h"
#include "eval/plot.h"
#include "util/fs.h"

namespace clm::cli {

void add_plot(CLI::App& app, Commands& cmds) {
  struct Args {
    std::string metrics, out;
  };
  auto a = std::make_shared<Args>();
  auto* pl = app.add_subcommand("plot", "Loss curve (SVG) from a run's metrics.jsonl, perplexity vs bits from a clm eval --report file, or a clm kv-bench file's curves");
  pl->add_option("metrics", a->metrics, "metrics.jsonl (or its run folder), or a quantization report")->required();
  pl->add_option("-o,--out", a->out, "Output SVG (default: next to the metrics, loss.svg)");
  cmds.push_back({pl, [a] {
                    namespace fs = std::filesystem;
                    std::string p = fs::is_directory(a->metrics) ? a->metrics + "/metrics.jsonl" : a->metrics;
                    const std::string text = read_file(p);
                    // a clm eval --report file: quantized rows plot against bits, plain rows against the window
                    const bool report = text.find("\"w_bits\"") != std::string::npos;
                    auto count = [&](const std::string& s) {
                      size_t n = 0;
                      for (size_t at = text.find(s); at != std::string::npos; at = text.find(s, at + 1)) ++n;
                      return n;
                    };
                    const bool quant = report && count("\"method\":\"") > count("\"method\":\"none\"");
                    if (text.find("\"bench\":\"serve\"") != std::string::npos) {  // clm_bench_serve rows
                      std::string o = a->out.empty() ? (fs::path(p).parent_path() / "serve.svg").string() : a->out;
                      write_file_atomic(o, serve_svg(text, "Serving throughput: " + p));
                      std::printf("wrote %s\n", o.c_str());
                      return 0;
                    }
                    if (text.find("\"kv_frac\"") != std::string::npos) {  // clm kv-bench rows: the metric against KV kept
                      const std::string metric = text.find("\"accuracy\"") != std::string::npos ? "accuracy"
                                                 : text.find("\"task\":\"gen\"") != std::string::npos ? "kl"  // long generation
                                                                                                : "ppl";
                      std::string o = a->out.empty() ? (fs::path(p).parent_path() / "kv.svg").string() : a->out;
                      write_file_atomic(o, kv_svg(text, metric, "KV eviction: " + p));
                      std::printf("wrote %s\n", o.c_str());
                      return 0;
                    }
                    const char* name = !report ? "loss.svg" : quant ? "quant.svg" : "length.svg";
                    std::string o = a->out.empty() ? (fs::path(p).parent_path() / name).string() : a->out;
                    write_file_atomic(o, !report ? loss_curve_svg(text, "CompactLM loss: " + p)
                                         : quant ? quant_svg(text, "Perplexity vs bits: " + p)
                                                 : length_svg(text, "Perplexity vs evaluation window: " + p));
                    std::printf("wrote %s\n", o.c_str());
                    return 0;
                  }});
}

}  // namespace clm::cli
