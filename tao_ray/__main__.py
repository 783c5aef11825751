import sys

from tao_ray.cli import main

if __name__ == "__main__":  # vLLM spawns processes, which re-import the entry module
    sys.exit(main())
