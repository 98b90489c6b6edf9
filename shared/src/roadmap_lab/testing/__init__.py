"""What only tests use: tiny models that build in seconds (``tiny_models``) and the pytest plugin
every project's conftest loads (``pytest_plugin``). Library code never imports this package."""
