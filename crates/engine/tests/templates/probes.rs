//! Jinja features chat templates lean on, one small template each, for tests/templates.rs to
//! render through both renderers: where minijinja and jinja2 part (printing Python values,
//! `tojson`'s options, dict and string methods, tests, loop variables, errors), the real
//! templates would too, on inputs these tests do not happen to send.
//!
//! Known gaps, left out: Python's `'%s' % value` string formatting (minijinja has no `%` on
//! strings: we refuse where jinja2 renders) and `range(n) is sequence` (false here).

/// `(name, template)`; each renders with one user message ("Hi") and the test tools.
pub const PROBES: &[(&str, &str)] = &[
    (
        "print-scalars",
        "{{ none }}|{{ true }}|{{ false }}|{{ 1.0 }}|{{ 2.5 }}|{{ 1e20 }}|{{ 1.5e-7 }}|{{ 0.1 + 0.2 }}|{{ 10 // 3 }}|{{ 10 / 4 }}|{{ 7 / 7 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ 2 ** 3 }}",
    ),
    (
        "print-containers",
        "{{ [1, 'a', none, true, 2.0, \"it's\"] }}|{{ {'k': 'v', 'n': none, 'l': [1]} }}|{{ ('a',) }}|{{ (1, 2) }}|{{ range(3) | list }}|{{ {'b': 1, 'a': 2} | dictsort }}",
    ),
    ("print-message", "{{ messages[0] }}|{{ tools[0].function.parameters.required }}|{{ tools[1].function.parameters.properties.limit }}"),
    ("string-filter", "{{ none | string }}|{{ true | string }}|{{ 1.0 | string }}|{{ [1, 'a'] | string }}|{{ 3 | string + 'x' }}"),
    ("concat-tilde", "{{ 'x' ~ 1 ~ 'y' ~ 2.5 }}"),
    (
        "tojson",
        "{{ tools[0].function.parameters | tojson }}|{{ messages | tojson }}|{{ 'é\"\\n\\u0001' | tojson }}|{{ 1.0 | tojson }}|{{ none | tojson }}",
    ),
    (
        "tojson-options",
        "{{ tools[1] | tojson(indent=2) }}|{{ {'b': 1, 'a': [1, {}]} | tojson(sort_keys=true) }}|{{ {'a': [1, 2]} | tojson(separators=(',', ':')) }}|{{ 'é' | tojson(ensure_ascii=true) }}|{{ [] | tojson(indent=4) }}",
    ),
    (
        "items",
        "{% for k, v in tools[0].function.parameters.properties | items %}{{ k }}={{ v.type }};{% endfor %}|{% for k, v in tools[0].function.parameters.properties.items() %}{{ k }};{% endfor %}|{{ {'a': 1}.items() | list }}",
    ),
    (
        "dict-methods",
        "{{ {'a': 1}.get('b', 'z') }}|{{ {'a': 1}.get('a') }}|{{ {'a': 1}.get('b') }}|{{ {'a': 1}.keys() | list }}|{{ {'a': 1}.values() | list }}|{{ messages[0].get('name') is none }}|{{ 'content' in messages[0] }}|{{ 'name' in messages[0] }}",
    ),
    (
        "tests",
        "{{ 'abc' is string }}{{ 'abc' is sequence }}{{ 'abc' is iterable }}{{ 'abc' is mapping }}{{ {} is mapping }}{{ [] is mapping }}{{ [] is sequence }}{{ {} is sequence }}{{ {} is iterable }}{{ none is none }}{{ 1 is number }}{{ 1.5 is integer }}{{ 1 is integer }}{{ 1.5 is float }}{{ true is boolean }}{{ x is defined }}{{ none is defined }}{{ 3 is odd }}{{ 'a' is lower }}{{ 'x' is in 'xyz' }}{{ x is sequence }}{{ x is iterable }}{{ x is mapping }}{{ none is sequence }}{{ 1 is sequence }}{{ {'a': 1}.items() is sequence }}",
    ),
    (
        "namespace-loop",
        "{% set ns = namespace(a=1, b='') %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% set ns.b = ns.b ~ loop.index ~ loop.index0 ~ loop.revindex ~ loop.length %}{% endfor %}{{ ns.a }}|{{ ns.b }}",
    ),
    (
        "loop-extras",
        "{% for x in ['a', 'b', 'c'] %}{{ loop.first }}{{ loop.last }}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('o', 'e') }}{% endfor %}|{% for m in messages if m.role == 'user' %}{{ loop.index }}{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %}",
    ),
    ("loop-controls", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
    (
        "string-methods",
        "{{ 'a,b'.split(',') }}|{{ ' x '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'Hello'.startswith('He') }}|{{ 'Hello'.endswith(('lo', 'x')) }}|{{ 'abc'.upper() }}|{{ 'a b'.title() }}|{{ '-'.join(['1', '2']) }}|{{ 'a\\nb'.splitlines() }}|{{ 'a b  c'.split() }}|{{ 'a=b=c'.split('=', 1) }}|{{ 'abc'.replace('b', 'x') }}|{{ 'abc'.find('c') }}|{{ 'aXb'.lower() }}|{{ ' \\n x'.lstrip() }}|{{ 'x\\n\\n'.rstrip('\\n') }}|{{ 'abc'.capitalize() }}|{{ 'abc'.count('b') }}",
    ),
    (
        "slicing",
        "{{ 'abcdef'[::-1] }}|{{ 'abcdef'[1:3] }}|{{ 'abcdef'[-2:] }}|{{ [1, 2, 3][::-1] }}|{{ messages[-1].role }}|{{ [1, 2, 3][:-1] }}|{{ 'abc'[0] }}|{{ 'Zürich'[1] }}",
    ),
    (
        "filters",
        "{{ [3, 1, 2] | sort }}|{{ ['b', 'A', 'a'] | sort }}|{{ [1, 2, 3] | join(', ') }}|{{ [1, 2] | first }}|{{ [1, 2] | last }}|{{ [1, 2] | map('string') | join }}|{{ ['a', 'b'] | map('upper') | list }}|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|{{ messages | map(attribute='role') | list }}|{{ [1, 2] | reverse | list }}|{{ [1, 2] | sum }}|{{ ['b', 'a', 'b'] | unique | list }}|{{ 1.567 | round(2) }}|{{ 3.7 | int }}|{{ '3' | int + 1 }}|{{ 3 | float }}|{{ 'Zürich' | length }}|{{ '  a  ' | trim }}|{{ 'a' * 3 }}|{{ 'x' | replace('x', 'y') }}|{{ 'ab' | capitalize }}|{{ 'Zürich' | upper }}|{{ -3 | abs }}|{{ [1, 5, 2] | max }}",
    ),
    (
        "defaults",
        "{{ x | default('d') }}|{{ none | default('d') }}|{{ none | default('d', true) }}|{{ '' | default('d', true) }}|{{ x | d('e') }}",
    ),
    (
        "membership",
        "{% if 'k' in {'k': 1} %}a{% endif %}{% if 'a' in 'cat' %}b{% endif %}{% if 1 in [1] %}c{% endif %}{% if 'z' not in [1] %}d{% endif %}{{ 1 == 1.0 }}{{ [1] == [1] }}{{ {'a': 1} == {'a': 1} }}{{ 'a' < 'b' }}",
    ),
    ("set-block", "{% set x %}  inner {{ 1 + 1 }} {% endset %}[{{ x }}]|{% set a, b = 1, 2 %}{{ a }}{{ b }}"),
    ("macros", "{% macro f(a, b='d', c=none) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ f(1) }}|{{ f(1, c=3) }}|{{ f(1, 2, 3) }}"),
    ("adjacent-literals", "{{ 'a' 'b' }}|{{ ('x'\n  'y') }}"),
    ("str-format", "{{ '{}={}'.format('a', 1) }}"),
    ("concat-tilde-none", "{{ 'x' ~ none ~ true }}"),
    ("dict-builtin", "{{ dict(a=1, b=[2]) | tojson }}"),
    ("whitespace", "  {%- if true %}\n    x\n  {% endif %}\n  {% for i in [1] %}\n    {{ i }}\n  {% endfor %}\n"),
    ("bool-ops", "{{ none or 'x' }}|{{ '' or [] }}|{{ 0 and 1 }}|{{ not none }}|{{ [] if [] else 'e' }}"),
    ("undefined-print", "[{{ messages[0].missing }}][{{ nothing }}][{{ none.attr }}]"),
    // Errors: both sides must refuse.
    ("raise", "{{ raise_exception('boom') }}"),
    ("undefined-attr", "{{ messages[0].missing.attr }}"),
    ("add-none", "{{ 'a' + none }}"),
    ("in-none", "{{ 'a' in none }}"),
    ("int-plus-str", "{{ 1 + 'a' }}"),
];
