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
  auto* pl = app.add_subcommand("plot", "Loss curve (SVG) from a run's metrics.jsonl, or perplexity vs bits from a clm eval --report file");
  pl->add_option("metrics", a->metrics, "metrics.jsonl (or its run folder), or a quantization report")->required();
  pl->add_option("-o,--out", a->out, "Output SVG (default: next to the metrics, loss.svg)");
  cmds.push_back({pl, [a] {
                    namespace fs = std::filesystem;
                    std::string p = fs::is_directory(a->metrics) ? a->metrics + "/metrics.jsonl" : a->metrics;
                    const std::string text = read_file(p);
                    const bool quant = text.find("\"w_bits\"") != std::string::npos;  // a clm eval --report file
                    std::string o = a->out.empty() ? (fs::path(p).parent_path() / (quant ? "quant.svg" : "loss.svg")).string() : a->out;
                    write_file_atomic(o, quant ? quant_svg(text, "Perplexity vs bits: " + p) : loss_curve_svg(text, "CompactLM loss: " + p));
                    std::printf("wrote %s\n", o.c_str());
                    return 0;
                  }});
}

}  // namespace clm::cli
