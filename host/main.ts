export {};
console.log('placeholder');
