"""Packaging and deployment: the container image and the Elastic Beanstalk source bundle."""
