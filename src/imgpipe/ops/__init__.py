"""Operator tools: what happened to one upload, from the Step Functions API alone.

* `history` turns DescribeExecution / GetExecutionHistory responses into typed facts
  (pure, no AWS);
* `aws` finds the state machine and the executions of an upload (clients injected);
* `render` draws those facts with rich;
* `cli` wires the `executions` and `trace` subcommands into the `imgpipe` command.

Only public APIs are used, so the same commands work against the local emulator and a
deployed stack.
"""
