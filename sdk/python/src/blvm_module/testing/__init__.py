"""Testing modules on a real node: the pytest plugin
(:mod:`blvm_module.testing.plugin`, loaded by pytest through the
``pytest11`` entry point), :class:`~blvm_module.testing.node.BlvmNode`, and
the frame validator (:mod:`blvm_module.testing.validator`)."""
