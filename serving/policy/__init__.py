"""The stateful side of the qualification policy: the versioned store and the worker cache
(`store`), simulation and monitoring data (`simulation`) and `leadscore policy ...` (`cli`).
The policy maths itself is `features.policy`."""
