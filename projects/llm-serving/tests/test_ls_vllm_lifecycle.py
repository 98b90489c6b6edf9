"""A server's life through the CLI, as a user runs it: Ctrl-C while vLLM still starts, and a
model vLLM cannot load (a fast failure with the log). `serve` until SIGTERM (a graceful stop) is
the last test of test_ls_vllm.py, on the server the module's other tests read from."""

from __future__ import annotations

import signal
import time

import pytest
from llm_serving.errors import ServerError
from llm_serving.server import VllmServer
from ls_vllm_testing import group_alive, serve_cli, small_engine_settings, vllm_server_of
from roadmap_lab.services import free_port, http_probe, signal_process_group

pytestmark = pytest.mark.slow


def test_ctrl_c_during_startup_stops_vllm(tmp_path):
    port = free_port()
    cli = serve_cli(tmp_path, port, signal.SIGINT, None)
    with cli:
        server = vllm_server_of(cli.pid)
        try:
            time.sleep(2)  # into vLLM's startup, well before it is ready
            assert not http_probe(f"http://127.0.0.1:{port}/health")()
            # SIGINT to the CLI's process group, as a terminal's Ctrl-C (vLLM has its own). The
            # CLI's own exit code: it stopped vLLM within the grace period, without a SIGKILL.
            assert cli.stop() == 128 + signal.SIGINT
        finally:
            signal_process_group(server, signal.SIGKILL)  # only if the CLI left it behind
    assert not group_alive(server)
    assert "stopping vLLM before it was ready" in cli.log_tail()


def test_a_broken_model_fails_fast_with_the_log_tail(tmp_path):
    model = tmp_path / "broken"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "no-such-architecture"}')
    server = VllmServer(small_engine_settings(tmp_path / "run"), model)
    # "exited with code": the child's exit is noticed (not the startup timeout's error).
    with pytest.raises(ServerError, match="exited with code") as error, server:
        pass
    assert "no-such-architecture" in str(error.value)  # the log tail names the cause
