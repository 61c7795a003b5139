#!/usr/bin/env python3
# run_env_shebang.py - like run_shebang.py, through `env`, as most scripts are written.
print("env shebang ok")
