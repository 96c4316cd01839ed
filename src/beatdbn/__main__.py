from beatdbn.cli import main

main()
