"""Streamlit front end: send images to the Lambda API or the EC2 service and compare them."""
