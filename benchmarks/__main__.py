import sys

if sys.argv[1:2] == ["--scale"]:  # benchmarks/run --scale [...]: the array over every node
    from benchmarks.scale import main as scale

    raise SystemExit(scale(sys.argv[2:]))

from benchmarks.suite import main

raise SystemExit(main())
