from lstmnlp.cli import main

main()
