"""pflow IR 0.1.0: from a flow file to a validated :class:`~.spec.FlowSpec`.

- :mod:`.jsontypes`: JSON type names and JSON paths (a leaf: every other module uses it);
- :mod:`.keys`: the key tables (which keys each object of a flow takes, their types);
- :mod:`.parse`: JSON text -> a document (syntax errors with a caret, duplicate keys);
- :mod:`.load`: normalise (with :mod:`.aliases`), validate, build the spec and its
  nested flows (``load_flow``, ``build_flow``);
- :mod:`.validate` with its sections :mod:`.validate_nodes`, :mod:`.validate_graph`,
  :mod:`.validate_templates`: every problem of a document, at its JSON path;
- :mod:`.spec`: the validated model (``FlowSpec`` ...);
- :mod:`.templates` (``${...}``), :mod:`.items` (batch items sources), :mod:`.reach` and
  :mod:`.groups` (graph questions, parallel groups), :mod:`.jsonschema` (the JSON Schema
  behind ``pflow-tui schema``).
"""
