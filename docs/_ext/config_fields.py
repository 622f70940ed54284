"""A `config-fields` directive: the table of a config function's fields, read from its source.

    ```{config-fields} dvq_jax.vqvae.defaults.learned_prior
    ```

renders one row per `config.<field> = <value>` assignment in the function: the field's dotted
name, its default (the value the function returns) and the comments written beside or above the
assignment. The table therefore lists exactly the fields the code defines, with the code's
comments as their documentation.
"""

import ast
import importlib
import inspect
import textwrap
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive


def _field_name(target: ast.expr) -> str | None:
  """`config.model.dtype` -> `model.dtype`; None for any other assignment target."""
  parts = []
  while isinstance(target, ast.Attribute):
    parts.append(target.attr)
    target = target.value
  if isinstance(target, ast.Name) and target.id == "config" and parts:
    return ".".join(reversed(parts))
  return None


def _comment(lines: list[str], line: int) -> str:
  """The comment block right above source line `line` (1-based) plus the one on the line itself."""
  above = []
  i = line - 2
  while i >= 0 and lines[i].strip().startswith("#"):
    above.append(lines[i].strip().lstrip("#").strip())
    i -= 1
  text = " ".join(reversed(above))
  code = lines[line - 1]
  if "#" in code:
    # The inline comment; a '#' inside a string literal would break this, and no field has one.
    text = (text + " " + code.split("#", 1)[1].strip()).strip()
  return text


def config_fields(qualified_name: str) -> list[tuple[str, Any, str]]:
  """(field, default, comment) for every `config.<field> = ...` in the named function."""
  module_name, function_name = qualified_name.rsplit(".", 1)
  function = getattr(importlib.import_module(module_name), function_name)
  source = textwrap.dedent(inspect.getsource(function))
  lines = source.splitlines()
  config = function()
  rows = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
      name = _field_name(node.targets[0])
      if name is None:
        continue
      value = config
      for part in name.split("."):
        value = value[part]
      if hasattr(value, "to_dict"):  # a sub-config such as `config.model`: its fields follow
        continue
      rows.append((name, value, _comment(lines, node.lineno)))
  rows.sort(key=lambda row: next(i for i, line in enumerate(lines)
                                 if line.lstrip().startswith(f"config.{row[0]} ")))
  return rows


def _cell(children: list[nodes.Node]) -> nodes.entry:
  entry = nodes.entry()
  entry += nodes.paragraph("", "", *children)
  return entry


class ConfigFields(Directive):
  """Renders `config_fields(argument)` as a three-column table."""

  required_arguments = 1

  def run(self) -> list[nodes.Node]:
    rows = config_fields(self.arguments[0])
    table = nodes.table(classes=["config-fields"])
    group = nodes.tgroup(cols=3)
    table += group
    for width in (25, 15, 60):
      group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += nodes.row("", *(_cell([nodes.Text(t)]) for t in ("field", "default", "meaning")))
    group += head
    body = nodes.tbody()
    for name, value, comment in rows:
      body += nodes.row("", _cell([nodes.literal(text=name)]),
                        _cell([nodes.literal(text=repr(value))]),
                        _cell([nodes.Text(comment)]))
    group += body
    return [table]


def setup(app) -> dict[str, Any]:
  app.add_directive("config-fields", ConfigFields)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
