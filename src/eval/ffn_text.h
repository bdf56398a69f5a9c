// Text with every token marked by how many FFN experts it went through: the MoE++ saving made
// visible. On a terminal every token that used fewer than top_k FFN experts per layer (on average
// over the layers) gets a colour by how few; in pipes and files the tokens that used at most half
// of the FFN work (<= top_k / 2) get a "[text]0.8" mark, which keeps the text readable.
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
