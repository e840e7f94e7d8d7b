from textualize.cli import main

main()
