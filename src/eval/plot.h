// Loss curves from metrics.jsonl as a self-contained SVG (no plotting dependency).
#pragma once
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

}  // namespace clm
