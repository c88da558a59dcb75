"""What the SDK check scripts share: the two official clients for a base URL, and `check`, which
counts passed checks and exits non-zero with a message on the first failure."""

import sys

import anthropic
import openai


def clients(base):
    """The openai and anthropic clients for an MLX Manager endpoint (no retries: errors show)."""
    return (
        openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0),
        anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0),
    )


passed = 0


def check(cond, what):
    global passed
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    passed += 1


def done():
    print(f"{passed} checks passed")
