import sys

if sys.argv[1:2] == ["indexing"]:  # python -m benchmarks indexing ...: the indexing benchmark
    from benchmarks.indexing import main as indexing

    sys.exit(indexing(sys.argv[2:]))

from benchmarks.run import main

sys.exit(main())
