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
  auto* pl = app.add_subcommand("plot", "Loss curve (SVG) from a run's metrics.jsonl");
  pl->add_option("metrics", a->metrics, "metrics.jsonl (or its run folder)")->required();
  pl->add_option("-o,--out", a->out, "Output SVG (default: next to the metrics, loss.svg)");
  cmds.push_back({pl, [a] {
                    namespace fs = std::filesystem;
                    std::string p = fs::is_directory(a->metrics) ? a->metrics + "/metrics.jsonl" : a->metrics;
                    std::string o = a->out.empty() ? (fs::path(p).parent_path() / "loss.svg").string() : a->out;
                    write_file_atomic(o, loss_curve_svg(read_file(p), "CompactLM loss: " + p));
                    std::printf("wrote %s\n", o.c_str());
                    return 0;
                  }});
}

}  // namespace clm::cli
