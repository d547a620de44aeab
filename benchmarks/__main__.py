import sys

if sys.argv[1:2] == ["indexing"]:  # python -m benchmarks indexing ...: the indexing benchmark
    from benchmarks.indexing import main as indexing

    sys.exit(indexing(sys.argv[2:]))

if sys.argv[1:2] == ["ray"]:  # python -m benchmarks ray ...: Ray Data against clipclap index
    from benchmarks.ray_data import main as ray_data

    sys.exit(ray_data(sys.argv[2:]))

from benchmarks.run import main

sys.exit(main())
