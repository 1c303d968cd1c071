// Loss curves from metrics.jsonl as a self-contained SVG (no plotting dependency).
#pragma once
#include <map>
#include <string>

namespace clm {

// Reads JSONL rows with "step" and "loss" (train) and/or "val_loss" (validation); later rows for the
// same step win (resumed runs). Throws if there is nothing to plot.
std::string loss_curve_svg(const std::string& jsonl, const std::string& title);

// Perplexity against bits per weight from a quantization report (clm eval --report: rows with
// "ppl", "w_bits", "a_bits", "method", "options"), one labelled point per row. Throws if none.
std::string quant_svg(const std::string& jsonl, const std::string& title);

// Perplexity against the evaluation window (length extrapolation) from clm eval --report rows with
// "window" and "ppl": one line per series (the model folder's name and its position options other
// than "scale", which a scaled run sets per window), log-log axes. Throws if none.
std::string length_svg(const std::string& jsonl, const std::string& title);

// Lines through points (x -> y), one per labelled series, with optional log axes (log2 x, log10 y).
std::string lines_svg(const std::map<std::string, std::map<double, double>>& series, const std::string& title, const std::string& xlabel,
                      const std::string& ylabel, bool log_x, bool log_y);

// A metric (accuracy, ppl, ...) against the fraction of KV cells kept, one line per policy, from
// clm kv-bench's JSONL rows ("policy", "kv_frac", metric). Throws if none.
std::string kv_svg(const std::string& jsonl, const std::string& metric, const std::string& title);

// Serving throughput against concurrent clients from clm_bench_serve's JSONL rows ("bench": "serve",
// "label", "clients", "tokens_per_s"), one line per label, log axes. Throws if none.
std::string serve_svg(const std::string& jsonl, const std::string& title);

}  // namespace clm
