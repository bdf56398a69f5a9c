#!/usr/bin/python3
"""Renders chat templates with the real Jinja2 (Debian python3-jinja2), set up exactly as
transformers' apply_chat_template does, and writes the golden file the C++ test compares with.

  /usr/bin/python3 tests/tokenizer/make_chat_template_golden.py [ASSETS_DIR]

Templates: the real ones shipped with the tokenizer assets (Llama-3, Qwen3, DeepSeek-V3), the
Mixtral-8x7B-Instruct-v0.1 template, and small templates that exercise one feature each.
"""
import json
import os
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ASSETS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".cache", "tokenizer-assets")

MIXTRAL_INSTRUCT = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")

FEATURES = {
    "loop_vars": "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{% if loop.first %}F{% endif %}"
                 "{% if loop.last %}L{% endif %}:{{ m.role | upper }} {% endfor %}",
    "whitespace": "A\n  {% if true %}\n    B\n  {% endif %}\n{%- for m in messages -%}\n  [{{ m.content }}]\n{%- endfor %}\n C {{- ' D' }}",
    "namespace_and_scope": "{% set ns = namespace(n=0, s='') %}{% set x = 'outer' %}{% for m in messages %}"
                           "{% set x = 'inner' %}{% set ns.n = ns.n + 1 %}{% set ns.s = ns.s ~ m.role[0] %}{% endfor %}"
                           "{{ x }} {{ ns.n }} {{ ns.s }}",
    "slices_and_filters": "{{ messages[::-1] | map(attribute='role') | join(',') }}|{{ messages[-1].content[:5] }}"
                          "|{{ (messages | length) - 1 }}|{{ '  pad  ' | trim }}|{{ none | default('dflt') }}"
                          "|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|{{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 3 }} {{ 7 / 2 }}",
    "tests_and_methods": "{% for m in messages %}{% if m.content is string and m.content.startswith('Hel') %}S{% endif %}"
                         "{% if m.missing is not defined %}u{% endif %}{% if m.content is none %}N{% endif %}"
                         "{{ m.content.split(' ')[0] if m.content else '' }};{% endfor %}{{ 'a,b,,c'.split(',') }}"
                         "{{ ' x '.strip() }}{{ 'xxhixx'.lstrip('x') }}{{ 'abc'.replace('b', 'B') }}",
    "tojson_and_dicts": "{{ messages[0] | tojson }}|{{ {'a': 1, 'b': [true, none, 1.5, 'q\"']} | tojson }}"
                        "|{% for k, v in {'x': 1, 'y': 2}.items() %}{{ k }}={{ v }} {% endfor %}"
                        "|{{ tools | default([]) | tojson(indent=2) }}",
    "loop_controls": "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 4 %}{% break %}{% endif %}"
                     "{{ i }}{% else %}empty{% endfor %}|{% for m in [] %}x{% else %}empty{% endfor %}",
    "in_and_ternary": "{{ 'yes' if 'ell' in messages[0].content else 'no' }} {{ 'user' in ['user', 'x'] }} "
                      "{{ 'k' in {'k': 1} }} {{ 1 not in [2] }} {{ not false and (1 < 2 or x) }} {{ [1, 2] + [3] }} {{ 1 == 1.0 }}",
    "comments_and_raw_text": "{# a comment #}Hi {{ bos_token }}{# another\nline #}\n{{ eos_token }}",
}

MESSAGES = [
    [{"role": "user", "content": "Hello there, how are you?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello! 2+2?"},
     {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"}, {"role": "user", "content": "And  3+3 ?\n"}],
    [{"role": "user", "content": "Héllo wörld 你好 🌍"}, {"role": "assistant", "content": "Hi."},
     {"role": "user", "content": "Again"}],
]
TOOLS = [{"type": "function", "function": {"name": "get_time", "description": "Time now",
                                            "parameters": {"type": "object", "properties": {}}}}]


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def main():
    templates = {"mixtral-instruct": MIXTRAL_INSTRUCT}
    for name in ("llama3", "qwen3", "deepseek-v3"):
        with open(os.path.join(ASSETS, "hf", name, "tokenizer_config.json")) as f:
            templates[name] = json.load(f)["chat_template"]
    templates.update(FEATURES)
    env = environment()
    cases = []
    for name, source in templates.items():
        t = env.from_string(source)
        for i, messages in enumerate(MESSAGES):
            for gen in (False, True):
                extra = {"tools": TOOLS} if (name in ("qwen3", "tojson_and_dicts") and i == 1) else {}
                case = {"name": f"{name}/{i}/{'gen' if gen else 'nogen'}", "template": name, "messages": messages,
                        "add_generation_prompt": gen, "extra": extra, "bos_token": "<s>", "eos_token": "</s>"}
                try:
                    case["expected"] = t.render(messages=messages, add_generation_prompt=gen, bos_token="<s>",
                                                eos_token="</s>", **extra)
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    out = os.path.join(HERE, "data", "chat_templates.json")
    with open(out, "w") as f:
        json.dump({"jinja2_version": jinja2.__version__, "templates": templates, "cases": cases}, f, indent=1,
                  ensure_ascii=False)
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
