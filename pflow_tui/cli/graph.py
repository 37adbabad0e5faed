"""``pflow-tui graph FLOW.json [--format mermaid|dot] [-o FILE]``: the flow's graph as text,
for docs and pull requests (see :mod:`pflow_tui.engine.ir.diagram`)."""

from __future__ import annotations

from ..engine.ir.diagram import render
from ..engine.ir.load import load_flow
from ..engine.ir.spec import FlowSpec, children_ir
from ..engine.problems import FlowError
from ..engine.python.pyprogram import Program, is_target, load_program
from .output import print_warnings, report_flow_error, write_output
from .parsing import Options


def command(opts: Options) -> int:
    spec: FlowSpec | Program
    try:
        spec = load_program(opts.flow) if is_target(opts.flow) else load_flow(opts.flow)
    except FlowError as exc:
        return report_flow_error(exc)
    if isinstance(spec, Program):
        text = render(opts.format, spec.ir, spec.name, spec.children_ir)
    else:
        print_warnings(spec.warnings)
        text = render(opts.format, spec.ir, spec.name, children_ir(spec))
    return write_output(text, opts.output)
