"""The documentation's generated parts and links: the config-field table lists exactly the config's
fields, and every link to a heading finds it."""

import functools
import pathlib
import re
import sys

from dvq_jax.vqvae import defaults

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import config_fields  # noqa: E402  (docs/_ext is not a package)


def _leaves(config, prefix=""):
  for key, value in config.items():
    if hasattr(value, "items"):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


def test_config_fields_table_lists_every_field_with_its_default():
  rows = config_fields.config_fields("dvq_jax.vqvae.defaults.learned_prior")
  listed = [(name, value) for name, value, _ in rows]
  assert len(listed) == len(dict(listed))  # no field twice
  assert dict(listed) == dict(_leaves(defaults.learned_prior()))


def test_config_fields_table_carries_the_comments():
  comments = {name: comment for name, _, comment in
              config_fields.config_fields("dvq_jax.vqvae.defaults.learned_prior")}
  assert comments["num_codebooks"] == "L"
  assert comments["batch_size"] == "global, over all devices and hosts"
  # A comment block above a field belongs to it, together with the one on its own line.
  assert comments["equal_width"].startswith("True: every quantizer's encoder emits L*D channels")


def _slug(heading):
  """The anchor GitHub and MyST (`myst_heading_anchors`) give a heading."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.cache
def _anchors(path):
  """The heading anchors of a Markdown page, through its `{include}` blocks (a `# comment` in a
  fenced code block is not a heading)."""
  text = path.read_text(encoding="utf-8")
  anchors = set()
  for included in re.findall(r"^```\{include\} (\S+)", text, re.M):
    anchors |= _anchors((path.parent / included).resolve())
  prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
  return anchors | {_slug(h) for h in re.findall(r"^#{1,4} (.+)$", prose, re.M)}


def test_every_link_to_a_heading_finds_it():
  # Headings carry dates and loads, so a rerun renames them; a stale link must fail here.
  pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
           *sorted((ROOT / "benchmarks").glob("*.md"))]
  links = [(page, target, anchor) for page in pages
           for target, anchor in re.findall(r"\]\(([\w./-]*\.md)#([^)\s]+)\)",
                                            page.read_text(encoding="utf-8"))]
  assert len(links) > 20
  broken = [f"{page.relative_to(ROOT)} -> {target}#{anchor}" for page, target, anchor in links
            if anchor not in _anchors((page.parent / target).resolve())]
  assert not broken, broken
