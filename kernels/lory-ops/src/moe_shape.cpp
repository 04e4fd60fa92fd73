#include "lory/moe_shape.h"

#include <sstream>

namespace lory {

const char* const kMoeInputNames[7] = {"x", "e", "W_gate", "W_up", "W_down", "dy", "saved"};

static std::string dims_to_string(const std::vector<int64_t>& dims) {
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < dims.size(); ++i) s << (i ? "," : "") << dims[i];
  s << ']';
  return s.str();
}

static std::string describe_inputs(const std::vector<std::vector<int64_t>>& input_dims) {
  std::ostringstream s;
  for (size_t i = 0; i < input_dims.size() && i < 7; ++i)
    s << (i ? ", " : "") << kMoeInputNames[i] << ' ' << dims_to_string(input_dims[i]);
  return s.str();
}

std::string infer_moe_shape(const char* op_name, const std::vector<std::vector<int64_t>>& input_dims,
                            MoeShape* out) {
  auto fail = [&](const std::string& what) {
    return std::string(op_name) + ": " + what + " (inputs: " + describe_inputs(input_dims) + ")";
  };
  if (input_dims.size() < 5 || input_dims.size() > 7)
    return fail("expected 5 to 7 inputs, got " + std::to_string(input_dims.size()));
  static const size_t ranks[7] = {3, 2, 3, 3, 3, 3, 4};
  for (size_t i = 0; i < input_dims.size(); ++i)
    if (input_dims[i].size() != ranks[i])
      return fail(std::string("input '") + kMoeInputNames[i] + "' must have rank " + std::to_string(ranks[i]) +
                  ", got shape " + dims_to_string(input_dims[i]));
  MoeShape s;
  s.G = input_dims[0][0];
  s.T = input_dims[0][1];
  s.d = input_dims[0][2];
  s.E = input_dims[1][1];
  s.f = input_dims[2][2];
  const std::vector<std::vector<int64_t>> expected = {
      {s.G, s.T, s.d}, {s.G, s.E}, {s.E, s.d, s.f}, {s.E, s.d, s.f}, {s.E, s.f, s.d}, {s.G, s.T, s.d}, {2, s.G, s.T, s.f}};
  static const char* const meaning[7] = {"[G,T,d]", "[G,E]", "[E,d,f]", "[E,d,f]", "[E,f,d]", "[G,T,d]", "[2,G,T,f]"};
  for (size_t i = 0; i < input_dims.size(); ++i)
    if (input_dims[i] != expected[i])
      return fail(std::string("input '") + kMoeInputNames[i] + "' has shape " + dims_to_string(input_dims[i]) +
                  ", expected " + meaning[i] + " = " + dims_to_string(expected[i]));
  for (int64_t v : {s.G, s.T, s.d, s.f, s.E})
    if (v <= 0) return fail("every dimension must be positive");
  *out = s;
  return "";
}

}  // namespace lory
