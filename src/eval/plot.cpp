#include "eval/plot.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace clm {

namespace {
// Calls f on every non-blank line of a JSONL text, parsed; `what` names the file kind in errors.
void for_each_json_line(const std::string& jsonl, const char* what, const std::function<void(const nlohmann::json&)>& f) {
  std::istringstream in(jsonl);
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception&) {
      throw std::runtime_error(std::string(what) + " line " + std::to_string(lineno) + " is not JSON");
    }
    f(j);
  }
}
}  // namespace

std::string loss_curve_svg(const std::string& jsonl, const std::string& title) {
  std::map<int64_t, double> train, val;
  for_each_json_line(jsonl, "metrics", [&](const nlohmann::json& j) {
    if (!j.contains("step")) return;
    int64_t s = j["step"].get<int64_t>();
    if (j.contains("loss") && j["loss"].is_number()) train[s] = j["loss"].get<double>();
    if (j.contains("val_loss") && j["val_loss"].is_number()) val[s] = j["val_loss"].get<double>();
  });
  if (train.empty() && val.empty()) throw std::runtime_error("no loss values in metrics");
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (auto* m : {&train, &val})
    for (auto& [s, v] : *m) {
      if (!std::isfinite(v)) continue;
      x0 = std::min(x0, double(s)), x1 = std::max(x1, double(s));
      y0 = std::min(y0, v), y1 = std::max(y1, v);
    }
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  const double W = 800, H = 480, L = 70, R = 20, T = 40, B = 50;
  auto px = [&](double s) { return L + (s - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double v) { return T + (y1 - v) / (y1 - y0) * (H - T - B); };
  std::ostringstream o;
  o.precision(4);
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n"
    << "<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << W / 2 << "' y='22' text-anchor='middle' font-size='15'>" << title << "</text>\n";
  for (int i = 0; i <= 5; ++i) {  // grid and tick labels
    double v = y0 + (y1 - y0) * i / 5, s = x0 + (x1 - x0) * i / 5;
    o << "<line x1='" << L << "' x2='" << W - R << "' y1='" << py(v) << "' y2='" << py(v) << "' stroke='#ddd'/>"
      << "<text x='" << L - 6 << "' y='" << py(v) + 4 << "' text-anchor='end'>" << v << "</text>\n"
      << "<text x='" << px(s) << "' y='" << H - B + 18 << "' text-anchor='middle'>" << int64_t(s) << "</text>\n";
  }
  o << "<text x='" << W / 2 << "' y='" << H - 10 << "' text-anchor='middle'>step</text>\n"
    << "<text x='16' y='" << H / 2 << "' transform='rotate(-90 16 " << H / 2 << ")' text-anchor='middle'>loss (nats/token)</text>\n";
  auto poly = [&](const std::map<int64_t, double>& m, const char* color, bool dots) {
    if (m.empty()) return;
    o << "<polyline fill='none' stroke='" << color << "' stroke-width='1.5' points='";
    for (auto& [s, v] : m)
      if (std::isfinite(v)) o << px(double(s)) << ',' << py(v) << ' ';
    o << "'/>\n";
    if (dots)
      for (auto& [s, v] : m)
        if (std::isfinite(v)) o << "<circle cx='" << px(double(s)) << "' cy='" << py(v) << "' r='3' fill='" << color << "'/>\n";
  };
  poly(train, "#1f77b4", false);
  poly(val, "#d62728", true);
  o << "<text x='" << W - R - 150 << "' y='" << T + 15 << "' fill='#1f77b4'>train loss</text>\n"
    << "<text x='" << W - R - 150 << "' y='" << T + 32 << "' fill='#d62728'>valid loss</text>\n</svg>\n";
  return o.str();
}

std::string quant_svg(const std::string& jsonl, const std::string& title) {
  struct P {
    double bits, ppl;
    std::string label;
  };
  std::vector<P> pts;
  for_each_json_line(jsonl, "report", [&](const nlohmann::json& j) {
    if (!j.contains("ppl") || !j["ppl"].is_number() || !j.contains("w_bits") || !j["w_bits"].is_number()) return;
    std::string label = j.value("method", "?");
    if (j.contains("options") && j["options"].is_object())
      for (auto& [k, v] : j["options"].items())
        if (k != "head" && k != "kernel") label += " " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    char ab[32];
    std::snprintf(ab, sizeof ab, " (A%.3g)", j.value("a_bits", 32.0));
    pts.push_back({j["w_bits"].get<double>(), j["ppl"].get<double>(), label + ab});
  });
  if (pts.empty()) throw std::runtime_error("no rows with ppl and w_bits in the report");
  double x0 = 0, x1 = 1, y0 = 1e300, y1 = -1e300;
  for (auto& p : pts) x1 = std::max(x1, p.bits), y0 = std::min(y0, p.ppl), y1 = std::max(y1, p.ppl);
  x1 *= 1.05;
  if (y1 <= y0) y1 = y0 + 1;
  const double pad = (y1 - y0) * 0.08;
  y0 -= pad, y1 += pad;
  const double W = 900, H = 560, L = 70, R = 260, T = 40, B = 50;
  auto px = [&](double s) { return L + (s - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double v) { return T + (y1 - v) / (y1 - y0) * (H - T - B); };
  std::ostringstream o;
  o.precision(4);
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='11'>\n"
    << "<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << (W - R) / 2 << "' y='22' text-anchor='middle' font-size='15'>" << title << "</text>\n";
  for (int i = 0; i <= 5; ++i) {
    double v = y0 + (y1 - y0) * i / 5, s = x0 + (x1 - x0) * i / 5;
    o << "<line x1='" << L << "' x2='" << W - R << "' y1='" << py(v) << "' y2='" << py(v) << "' stroke='#ddd'/>"
      << "<text x='" << L - 6 << "' y='" << py(v) + 4 << "' text-anchor='end'>" << v << "</text>\n"
      << "<text x='" << px(s) << "' y='" << H - B + 18 << "' text-anchor='middle'>" << s << "</text>\n";
  }
  o << "<text x='" << (W - R) / 2 << "' y='" << H - 10 << "' text-anchor='middle'>bits per weight</text>\n"
    << "<text x='16' y='" << H / 2 << "' transform='rotate(-90 16 " << H / 2 << ")' text-anchor='middle'>perplexity</text>\n";
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
  for (size_t i = 0; i < pts.size(); ++i) {
    const char* c = colors[i % 10];
    o << "<circle cx='" << px(pts[i].bits) << "' cy='" << py(pts[i].ppl) << "' r='4' fill='" << c << "'/>"
      << "<text x='" << px(pts[i].bits) + 6 << "' y='" << py(pts[i].ppl) - 4 << "' fill='" << c << "'>" << i + 1 << "</text>\n"
      << "<text x='" << W - R + 10 << "' y='" << T + 14 * double(i) << "' fill='" << c << "'>" << i + 1 << ". " << pts[i].label << " : "
      << pts[i].ppl << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

std::string length_svg(const std::string& jsonl, const std::string& title) {
  std::map<std::string, std::map<double, double>> series;  // label -> window -> ppl
  for_each_json_line(jsonl, "report", [&](const nlohmann::json& j) {
    if (!j.contains("ppl") || !j["ppl"].is_number() || !j.contains("window") || !j["window"].is_number()) return;
    std::string label = std::filesystem::path(j.value("model", "?")).filename().string();
    if (j.contains("position_opt") && j["position_opt"].is_object())
      for (auto& [k, v] : j["position_opt"].items())
        if (k != "scale") label += " " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    if (j.contains("position_opt") && j["position_opt"].is_object() && j["position_opt"].contains("scale")) label += " (scaled)";
    series[label][j["window"].get<double>()] = j["ppl"].get<double>();
  });
  if (series.empty()) throw std::runtime_error("no rows with ppl and window in the report");
  return lines_svg(series, title, "evaluation window (tokens, log scale)", "perplexity (log scale)", true, true);
}

std::string lines_svg(const std::map<std::string, std::map<double, double>>& series, const std::string& title, const std::string& xlabel,
                      const std::string& ylabel, bool log_x, bool log_y) {
  if (series.empty()) throw std::runtime_error("nothing to plot");
  // axes in transformed units: log2 for x, log10 for y when logarithmic
  auto tx = [&](double x) { return log_x ? std::log2(x) : x; };
  auto ty = [&](double y) { return log_y ? std::log10(y) : y; };
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (auto& [_, pts] : series)
    for (auto [x, y] : pts) x0 = std::min(x0, tx(x)), x1 = std::max(x1, tx(x)), y0 = std::min(y0, ty(y)), y1 = std::max(y1, ty(y));
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 0.1;
  const double pad = (y1 - y0) * 0.06;
  y0 -= pad, y1 += pad;
  const double W = 900, H = 560, L = 70, R = 300, T = 40, B = 50;
  auto px = [&](double u) { return L + (u - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double u) { return T + (y1 - u) / (y1 - y0) * (H - T - B); };
  std::ostringstream o;
  o.precision(4);
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='11'>\n"
    << "<rect width='100%' height='100%' fill='white'/>\n"
    << "<text x='" << (W - R) / 2 << "' y='22' text-anchor='middle' font-size='15'>" << title << "</text>\n";
  for (int i = 0; i <= 5; ++i) {
    const double u = y0 + (y1 - y0) * i / 5;
    o << "<line x1='" << L << "' x2='" << W - R << "' y1='" << py(u) << "' y2='" << py(u) << "' stroke='#ddd'/>"
      << "<text x='" << L - 6 << "' y='" << py(u) + 4 << "' text-anchor='end'>" << (log_y ? std::pow(10.0, u) : u) << "</text>\n";
  }
  const double step = log_x ? 1.0 : (x1 - x0) / 5;
  for (double u = log_x ? std::ceil(x0) : x0; u <= x1 + 1e-9; u += step)
    o << "<line x1='" << px(u) << "' x2='" << px(u) << "' y1='" << T << "' y2='" << H - B << "' stroke='#eee'/>"
      << "<text x='" << px(u) << "' y='" << H - B + 18 << "' text-anchor='middle'>" << (log_x ? std::pow(2.0, u) : u) << "</text>\n";
  o << "<text x='" << (W - R) / 2 << "' y='" << H - 10 << "' text-anchor='middle'>" << xlabel << "</text>\n"
    << "<text x='16' y='" << H / 2 << "' transform='rotate(-90 16 " << H / 2 << ")' text-anchor='middle'>" << ylabel << "</text>\n";
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
  size_t i = 0;
  for (auto& [label, pts] : series) {
    const char* c = colors[i % 10];
    std::string path;
    for (auto [x, y] : pts) {
      path += (path.empty() ? "M" : " L") + std::to_string(px(tx(x))) + " " + std::to_string(py(ty(y)));
      o << "<circle cx='" << px(tx(x)) << "' cy='" << py(ty(y)) << "' r='3' fill='" << c << "'/>";
    }
    o << "<path d='" << path << "' fill='none' stroke='" << c << "' stroke-width='1.8'/>\n"
      << "<text x='" << W - R + 10 << "' y='" << T + 14 * double(i) << "' fill='" << c << "'>" << label << "</text>\n";
    ++i;
  }
  o << "</svg>\n";
  return o.str();
}

std::string kv_svg(const std::string& jsonl, const std::string& metric, const std::string& title) {
  std::map<std::string, std::map<double, double>> series;  // policy -> kept fraction -> metric
  for_each_json_line(jsonl, "kv-bench report", [&](const nlohmann::json& j) {
    if (!j.contains(metric) || !j[metric].is_number() || !j.contains("kv_frac") || !j["kv_frac"].is_number()) return;
    std::string label = j.value("policy", "?");  // a policy run with other options is another line
    if (j.contains("opts") && j["opts"].is_object() && !j["opts"].empty())
      for (auto& [k, v] : j["opts"].items()) label += " " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    series[label][j["kv_frac"].get<double>()] = j[metric].get<double>();
  });
  if (series.empty()) throw std::runtime_error("no rows with " + metric + " and kv_frac in the report");
  return lines_svg(series, title, "KV cells kept (fraction of the full cache)", metric + (metric == "ppl" ? " (log scale)" : ""), false,
                   metric == "ppl");
}

std::string serve_svg(const std::string& jsonl, const std::string& title) {
  std::map<std::string, std::map<double, double>> series;  // label -> clients -> tokens/s
  for_each_json_line(jsonl, "bench_serve report", [&](const nlohmann::json& j) {
    if (j.value("bench", "") != "serve" || !j.contains("clients") || !j.contains("tokens_per_s")) return;
    series[j.value("label", "?")][j["clients"].get<double>()] = j["tokens_per_s"].get<double>();
  });
  if (series.empty()) throw std::runtime_error("no bench_serve rows (clients, tokens_per_s) in the report");
  return lines_svg(series, title, "concurrent clients (log2)", "generated tokens/s (log scale)", true, true);
}

}  // namespace clm
