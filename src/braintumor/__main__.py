from braintumor.cli import main

main()
