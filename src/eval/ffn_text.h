// Text with every token marked by how many FFN experts it went through: the MoE++ saving made
// visible. Tokens that used fewer than top_k FFN experts per layer (on average over the layers)
// get a colour (terminals) or a "[text]1.5" mark (pipes, files).
#pragma once

#include <string>
#include <vector>

namespace moepp {

// token_texts, ffn_per_token: [n_tokens] (the text each token makes final; its mean FFN experts
// over layers). color: ANSI background colours instead of marks.
std::string render_ffn_text(const std::vector<std::string>& token_texts, const std::vector<double>& ffn_per_token,
                            int top_k, bool color);

// One line that explains the marks or colours.
std::string ffn_text_legend(int top_k, bool color);

}  // namespace moepp
